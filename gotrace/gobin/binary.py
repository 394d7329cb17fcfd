"""One Go executable and the facts read from it, each parsed lazily and once."""

from __future__ import annotations

import os
import re
from collections.abc import Collection
from dataclasses import dataclass
from functools import cached_property

from gotrace.errors import NotGoBinaryError, UnsupportedGoError
from gotrace.gobin.buildinfo import BuildInfo, read_buildinfo
from gotrace.gobin.callers import direct_callers
from gotrace.gobin.disasm import entry_probe_site, ret_sites
from gotrace.gobin.dwarf import dwarf_struct_fields
from gotrace.gobin.elffile import ElfImage
from gotrace.gobin.moduledata import ModuleData, find_moduledata
from gotrace.gobin.pclntab import Pclntab
from gotrace.gobin.symtab import function_symbols
from gotrace.gobin.typeinfo import TypeInfo, split_type_name
from gotrace.versions import Version, parse_version

MIN_GO = (1, 18)
_METHOD = re.compile(r"(?P<pkg>.+)\.\((?P<type>\*?[^.()]+)\)\.(?P<method>[^.]+)")


@dataclass(frozen=True)
class Function:
    name: str
    address: int
    end: int
    source: str  # "symtab" or "pclntab"


class GoBinary:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.image = ElfImage(path)
        self.path = self.image.path
        # Fail early, with the clearest message, on what is not a Go program we support.
        self.pclntab = Pclntab(self.image)
        info = read_buildinfo(self.image)
        if info is None:
            raise NotGoBinaryError(f"{self.path}: no Go build info; not a Go 1.18+ binary")
        self.buildinfo: BuildInfo = info
        version = parse_version(info.go_version)
        if version is None or len(version) < 2:
            raise NotGoBinaryError(f"{self.path}: unreadable Go version {info.go_version!r}")
        if version[:2] < MIN_GO:
            raise UnsupportedGoError(self.path, info.go_version)
        self.go_version: Version = version

    def close(self) -> None:
        self.image.close()

    def __enter__(self) -> GoBinary:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def go_minor(self) -> int:
        return self.go_version[1]

    def module_version(self, module_path: str | None) -> Version | None:
        if not module_path:
            return None
        text = self.buildinfo.module_version(module_path)
        return parse_version(text) if text else None

    @cached_property
    def moduledata(self) -> ModuleData:
        return find_moduledata(self.image, self.pclntab)

    @cached_property
    def pclntab_functions(self) -> dict[str, Function]:
        out: dict[str, Function] = {}
        for fn in self.pclntab.functions(self.moduledata.text):
            out.setdefault(fn.name, Function(fn.name, fn.address, fn.end, "pclntab"))
        return out

    @cached_property
    def symtab_functions(self) -> dict[str, Function]:
        return {
            name: Function(name, addr, addr + size, "symtab")
            for name, (addr, size) in function_symbols(self.image).items()
        }

    def function(self, name: str, sources: tuple[str, ...] = ("symtab", "pclntab")
                 ) -> Function | None:
        for source in sources:
            table = self.symtab_functions if source == "symtab" else self.pclntab_functions
            fn = table.get(name)
            if fn is not None:
                return fn
        return None

    def callers_from_outside(self, targets: Collection[Function], package: str
                             ) -> dict[str, set[str]]:
        """Each target's name -> the functions outside package that call it, directly or
        through functions of package (any depth), and 'interface <name>' for each interface
        of another package through which such a method may be called (no CALL names those).
        The package's own functions calling each other are how a library is built, not
        evidence that a program uses it (gobin/callers.py)."""
        if not targets:
            return {}
        prefix = package + "."
        inside = {f.name: f for f in self.pclntab_functions.values() if f.name.startswith(prefix)}
        graph = self._direct_callers({f.address for f in (*inside.values(), *targets)})
        found = {}
        for target in targets:
            outside: set[str] = set()
            seen, todo = {target.name}, [target]
            while todo:
                fn = todo.pop()
                for caller in graph.get(fn.address, set()) | self._interfaces_calling(fn.name):
                    if caller in inside:
                        if caller not in seen:
                            seen.add(caller)
                            todo.append(inside[caller])
                    elif not caller.startswith(f"interface {prefix}"):
                        outside.add(caller)
            found[target.name] = outside
        return found

    def _direct_callers(self, addresses: Collection[int]) -> dict[int, set[str]]:
        functions = sorted((f.address, f.name) for f in self.pclntab_functions.values())
        text_end = max((f.end for f in self.pclntab_functions.values()), default=0)
        return direct_callers(self.image, self.moduledata.text, text_end, functions, addresses)

    def _interfaces_calling(self, name: str) -> set[str]:
        """A method that interface values can call: 'interface <name>' for each interface
        the program stores its receiver type in, with the method among the interface's."""
        method = _METHOD.fullmatch(name)
        if not method:
            return set()
        receiver = f"{method['pkg']}.{method['type']}"
        return {f"interface {inter}" for inter, methods in self._itab_methods.get(receiver, ())
                if method["method"] in methods}

    @cached_property
    def _itab_methods(self) -> dict[str, list[tuple[str, frozenset[str]]]]:
        """Concrete type -> (interface, its methods) of every itab."""
        info = self.typeinfo
        found: dict[str, list[tuple[str, frozenset[str]]]] = {}
        for inter, concrete in info.itabs():
            found.setdefault(info.qualified_name_of(concrete), []).append(
                (info.qualified_name_of(inter), info.method_names_of(inter)))
        return found

    def rets(self, fn: Function) -> list[int]:
        return ret_sites(self.image, fn.address, fn.end)

    def entry_probe(self, fn: Function) -> int:
        return entry_probe_site(self.image, fn.address, fn.end)

    def has_methods(self, type_name: str) -> bool:
        """Whether any method of the named type is linked in (from .gopclntab)."""
        pkg, name = split_type_name(type_name)
        prefixes = (f"{pkg}.(*{name}).", f"{pkg}.{name}.")
        return any(n.startswith(prefixes) for n in self.pclntab_functions)

    @cached_property
    def typeinfo(self) -> TypeInfo:
        return TypeInfo(self.image, self.moduledata, self.go_minor)

    def dwarf_struct_fields(self, type_names: set[str]) -> dict[str, dict[str, int]]:
        return dwarf_struct_fields(self.image, type_names)
