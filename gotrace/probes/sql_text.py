"""Query text of database CLIENT spans, per the OpenTelemetry database semantic conventions:
SQL with its literals redacted (db.query.text), the statement's operation, collection and
summary (db.operation.name, db.collection.name, db.query.summary), the span name, and the
key-free text of Redis commands.

One lexer serves all of it. It knows the lexical shapes of the SQL dialects Go programs talk
to (PostgreSQL, MySQL/MariaDB, SQLite, SQL Server) well enough to tell literals, comments,
identifiers and placeholders apart; it is no parser. The reading of statements built on it
names a table only when the statement leaves no doubt, as the conventions ask.

Everything is linear in the text's length and raises on no input: a quote or comment that
is never closed runs to the end of the text (and is redacted or removed with it).
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

SUMMARY_LIMIT = 255  # characters; the conventions' truncation of a parsed db.query.summary


class Token(NamedTuple):
    kind: str  # space, comment, literal, quoted, placeholder, word or punct
    text: str


def _lexer(mysql: bool) -> re.Pattern[str]:
    """The token at a position: the first alternative that matches (one always does).

    A quoted run's body repeats a choice that cannot fail and ends in an optional closing
    quote, so a match never backtracks and an unterminated run takes the rest of the text.
    The common tokens come first (the alternatives are tried in turn); a prefixed string
    before the word its prefix would otherwise start.
    """
    def body(quote: str, backslash: bool) -> str:
        plain = f"[^{quote}\\\\]+|\\\\[\\s\\S]?|" if backslash else f"[^{quote}]+|"
        return f"{quote}(?:{plain}{quote}{quote})*{quote}?"

    double_quoted = "literal" if mysql else "quoted"
    return re.compile("|".join((
        r"(?P<space>\s+)",
        f"(?P<estring>[Ee]{body(chr(39), True)})",
        f"(?P<literal>(?:[NnXxBb]|[Uu]&)?{body(chr(39), mysql)})",
        r"(?P<word>[^\W\d][\w$]*)",
        r"(?P<punct>[(),;=<>*+|&%^~!:@{}\[\]])",  # characters that start no other token
        # A number takes any word characters glued to it: 0x1F, 1_000, 1e5, 2fa (a
        # MySQL name that starts with a digit is redacted: over-redaction, never a leak).
        r"(?P<number>(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d+)?\w*)",
        r"(?P<placeholder>\$\d+|\?\d*)",
        f"(?P<{double_quoted}_dq>{body(chr(34), mysql)})",
        f"(?P<quoted>{body('`', False)})",
        r"(?P<comment>--[^\n]*" + (r"|#[^\n]*)" if mysql else ")"),
        r"(?P<block>/\*)",
        r"(?P<dollar>\$(?:[^\W\d]\w*)?\$)",
        r"(?P<other>[\s\S])",
    )))


_LEXERS = {False: _lexer(False), True: _lexer(True)}
_COMMENT_MARK = re.compile(r"/\*|\*/")
_KINDS = {"other": "punct", "estring": "literal", "number": "literal", "literal_dq": "literal",
          "quoted_dq": "quoted", "block": "comment", "dollar": "literal"}


def _block_comment_end(text: str, opening: re.Match[str]) -> int:
    """Past the `*/` closing the comment opened. Comments nest (PostgreSQL and the standard);
    in MySQL, where they do not, this removes more than the comment: never less."""
    depth, pos = 0, opening.start()
    while mark := _COMMENT_MARK.search(text, pos):
        depth += 1 if mark.group() == "/*" else -1
        pos = mark.end()
        if depth == 0:
            return pos
    return len(text)


def _dollar_quote_end(text: str, tag: re.Match[str]) -> int:
    """Past PostgreSQL's closing $tag$ of the dollar-quoted string opened by tag."""
    close = text.find(tag.group(), tag.end())
    return len(text) if close < 0 else close + len(tag.group())


_RUN_ENDS = {"block": _block_comment_end, "dollar": _dollar_quote_end}


@functools.lru_cache(maxsize=2)
def tokens(text: str, *, mysql: bool = False) -> tuple[Token, ...]:
    """text cut into tokens that joined give text back. mysql: MySQL/MariaDB's lexical rules
    (see redact_sql). Cached for the few calls that read one statement in turn."""
    lexer, found, pos = _LEXERS[mysql], [], 0
    while pos < len(text):
        # Tokens are contiguous (punct matches any character): finditer runs them in C, and
        # starts over past each comment or dollar-quoted string, whose ends it cannot find.
        for match in lexer.finditer(text, pos):
            kind = match.lastgroup or "other"
            if kind in _RUN_ENDS:
                pos = _RUN_ENDS[kind](text, match)
                found.append(Token(_KINDS[kind], text[match.start():pos]))
                break
            found.append(Token(_KINDS.get(kind, kind), match.group()))
        else:
            break
    return tuple(found)


# -- db.query.text ---------------------------------------------------------------------------

_SPACE = Token("space", " ")
_REDACTED = Token("literal", "?")


def redact_sql(text: str, *, mysql: bool = False) -> str:
    """text with every literal a `?` and its comments removed: the sanitized db.query.text.

    Literals: strings ('..' with '' inside, E'..', N'..', X'..', B'..', U&'..'), PostgreSQL's
    $$..$$ and $tag$..$tag$, and numbers (integer, decimal, exponent, 0x..) wherever they
    stand: VARCHAR(64) becomes VARCHAR(?), as telling a type's length from a value would take
    a parser. The minus of a negative number stays, as the operator it is. Not literals:
    identifiers (t1, col_2), "quoted" and `quoted` identifiers, placeholders ($1, ?, ?1,
    :name, @name), and the keywords TRUE, FALSE and NULL (the conventions do count Boolean
    literals among those to replace; one holds a bit). Comments go whole (they can hold
    anything), optimizer hints with them. Whitespace runs, comments' places included, become
    one space; the rest of the text stays as it was. The conventions would have parameterized
    text left as it is: whether to redact it is the caller's choice.

    mysql: MySQL/MariaDB's default lexical rules. A backslash escapes the next character in
    a string (elsewhere `'it\\'s'` would end early and let its tail out), "double quotes"
    make a string, not an identifier, and `#` opens a comment. With ANSI_QUOTES set, MySQL
    reads "x" as an identifier, which this then redacts: a lost name, never a leaked value.
    Without mysql, "x" is the SQL standard's identifier (PostgreSQL, SQLite, SQL Server).

    IN lists of literals collapse, `IN (?, ?, ?)` to `IN (?)`: the conventions allow it, and
    it keeps statements that differ only in a list's length one text (and one cache entry
    above this). A list holding a placeholder stays as it is: parameterized text is not to be
    sanitized, and its placeholders name the query's parameters.
    """
    redacted = [
        _REDACTED if tok.kind == "literal" else _SPACE if tok.kind in ("space", "comment")
        else tok
        for tok in tokens(text, mysql=mysql)
    ]
    return _joined(_collapse_in_lists(redacted))


def _joined(toks: list[Token]) -> str:
    """The tokens' text, one space for a run of space tokens, none at either end."""
    runs = itertools.groupby(toks, key=lambda tok: tok.kind == "space")
    return "".join(" " if space else "".join(tok.text for tok in run)
                   for space, run in runs).strip(" ")


def _collapse_in_lists(toks: list[Token]) -> list[Token]:
    out: list[Token] = []
    pos = 0
    for start in [at for at, tok in enumerate(toks) if tok.text.upper() == "IN"]:
        span = _literal_in_list(toks, start) if start >= pos else None
        if span is not None:
            opening, end = span
            out += toks[pos:opening + 1]
            out += (_REDACTED, Token("punct", ")"))
            pos = end
    return out + toks[pos:]


def _literal_in_list(toks: list[Token], pos: int) -> tuple[int, int] | None:
    """(the index of `(`, the index past `)`) when toks[pos] is IN and opens a list of
    literals only (signed or not); None otherwise."""
    if toks[pos].kind != "word" or toks[pos].text.upper() != "IN":
        return None
    opening = _next(toks, pos + 1)
    if not _is_punct(toks, opening, "("):
        return None
    pos = opening
    while True:
        pos = _next(toks, pos + 1)
        if _is_punct(toks, pos, "-") or _is_punct(toks, pos, "+"):
            pos = _next(toks, pos + 1)
        if pos >= len(toks) or toks[pos].kind != "literal":
            return None
        pos = _next(toks, pos + 1)
        if _is_punct(toks, pos, ")"):
            return opening, pos + 1
        if not _is_punct(toks, pos, ","):
            return None


def _next(toks: list[Token], pos: int) -> int:
    """The index of the first token from pos that is not space."""
    while pos < len(toks) and toks[pos].kind == "space":
        pos += 1
    return pos


def _is_punct(toks: list[Token], pos: int, char: str) -> bool:
    return pos < len(toks) and toks[pos].kind == "punct" and toks[pos].text == char


# -- db.operation.name, db.collection.name, db.query.summary ---------------------------------

# Words naming a nested operation only where a statement can start (after "(", or a WITH
# list's ")"): elsewhere they are ON DELETE, FOR UPDATE, DO UPDATE, AFTER INSERT and the like.
_NESTABLE = frozenset({"INSERT", "UPDATE", "DELETE", "MERGE"})
# Statements whose verbs are privileges' names, not operations.
_PRIVILEGES = frozenset({"GRANT", "REVOKE"})
# The words introducing collections, each in the operations where it does (FROM in EXTRACT(..
# FROM ..) or COPY .. FROM stdin introduces none).
_INTRODUCERS = {
    "FROM": frozenset({"SELECT", "DELETE", "UPDATE"}),
    "JOIN": frozenset({"SELECT", "DELETE", "UPDATE"}),
    "INTO": frozenset({"INSERT", "REPLACE", "MERGE", "SELECT"}),
    "USING": frozenset({"DELETE", "MERGE"}),
    "TABLE": frozenset({"CREATE", "DROP", "ALTER", "TRUNCATE", "LOCK"}),
}
_NOISE = frozenset({"ONLY", "IF", "NOT", "EXISTS", "LATERAL"})  # between introducer and name


_Name = tuple[str, ...]  # a collection's name, its qualifiers first, each part as written


@dataclass
class _Operation:
    """An operation of a statement and the collections it names."""

    name: str  # upper-cased
    targets: list[_Name] = field(default_factory=list)
    unnamed: bool = False  # also reads something with no name: a subquery, a function's rows


@dataclass
class _Statement:
    verb: str | None  # the main statement's operation, upper-cased
    operations: list[_Operation]  # every operation, nested ones included, in text order


class _Reader:
    """The operations and collections of one statement (its tokens, no space or comment)."""

    def __init__(self, toks: list[Token]) -> None:
        self.toks = toks
        self.ops: list[_Operation] = []
        self.depth_ops: list[str | None] = [None]  # the operation open at each paren depth
        self.ctes: set[str] = set()
        first = toks[0]
        self.with_list = _word(first) == "WITH"
        self.verb: str | None = None
        if first.kind == "word" and not self.with_list:
            self.verb = first.text.upper()

    def read(self) -> _Statement:
        if self.verb is not None:
            self._operation(0, self.verb)
            if self.verb in _PRIVILEGES:
                return _Statement(self.verb, self.ops)
        for pos in range(0 if self.verb is None else 1, len(self.toks)):
            tok = self.toks[pos]
            if tok.kind in ("word", "quoted"):
                self._name_or_keyword(pos)
            elif tok.kind == "punct" and tok.text == "(":
                self.depth_ops.append(None)
            elif tok.kind == "punct" and tok.text == ")" and len(self.depth_ops) > 1:
                self.depth_ops.pop()
        verb = self.verb or ("WITH" if self.with_list else None)
        return _Statement(verb, self.ops)

    def _name_or_keyword(self, pos: int) -> None:
        tok = self.toks[pos]
        word = _word(tok)
        if self._is_operation(pos, word):
            self._operation(pos, word)
        elif word in _INTRODUCERS and self.depth_ops[-1] in _INTRODUCERS[word]:
            if _word(self._at(pos - 1)) != "DISTINCT":  # IS DISTINCT FROM
                self._targets(pos + 1, function_possible=word in ("FROM", "JOIN", "USING"))
        elif self._names_cte(pos):
            self.ctes.add(_folded(tok.text))

    def _is_operation(self, pos: int, word: str) -> bool:
        if word == "SELECT":
            return True
        if word not in _NESTABLE:
            return False
        before = self._at(pos - 1)
        after_with_list = (self.with_list and self.verb is None and len(self.depth_ops) == 1
                           and before.text == ")")
        return before.kind == "punct" and (before.text == "(" or after_with_list)

    def _operation(self, pos: int, word: str) -> None:
        """Record the operation at pos; the statement's verb if it has none yet: a WITH
        statement's is its first operation outside parentheses, a "(SELECT ..) UNION .."'s
        its first."""
        self.ops.append(_Operation(word))
        self.depth_ops[-1] = word
        if self.verb is None and (len(self.depth_ops) == 1 or not self.with_list):
            self.verb = word
        if word == "UPDATE" or (word == "TRUNCATE" and _word(self._at(pos + 1)) != "TABLE"):
            self._targets(pos + 1, function_possible=False)

    def _names_cte(self, pos: int) -> bool:
        """Whether toks[pos] is a name a WITH list declares (WITH name AS .., name AS ..)."""
        return (self.with_list and self.verb is None and len(self.depth_ops) == 1
                and self.toks[pos].kind in ("word", "quoted")
                and (_word(self._at(pos - 1)) in ("WITH", "RECURSIVE")
                     or self._at(pos - 1).text == ","))

    def _targets(self, pos: int, function_possible: bool) -> None:
        """The collections named from pos on: a name, or a comma list of names each with an
        optional alias. A name called like a function (FROM generate_series(..)) is none, and
        neither is a subquery: the operation reads something unnamed then."""
        while True:
            while _word(self._at(pos)) in _NOISE:
                pos += 1
            name, pos = self._name(pos)
            if name is None or (function_possible and self._at(pos).text == "("):
                self.ops[-1].unnamed = True
                return
            if len(name) > 1 or _folded(name[0]) not in self.ctes:
                self.ops[-1].targets.append(name)
            if _word(self._at(pos)) == "AS":
                pos += 1
            if self._at(pos).kind in ("word", "quoted"):  # an alias
                pos += 1
            if self._at(pos).text != ",":
                return
            pos += 1

    def _name(self, pos: int) -> tuple[_Name | None, int]:
        """A possibly qualified name at pos and the position after it."""
        parts: list[str] = []
        while self._at(pos).kind in ("word", "quoted"):
            parts.append(self.toks[pos].text)
            if self._at(pos + 1).text != ".":
                return tuple(parts), pos + 1
            pos += 2
        return None, pos

    def _at(self, pos: int) -> Token:
        """toks[pos]; an empty token before the first and after the last."""
        return self.toks[pos] if 0 <= pos < len(self.toks) else Token("end", "")


def _word(tok: Token) -> str:
    """A word token's text upper-cased; "" for any other token."""
    return tok.text.upper() if tok.kind == "word" else ""


def _folded(name: str) -> str:
    """name as SQL compares it: a bare name case-insensitively, a quoted one exactly."""
    return name if name[:1] in ('"', "`") else name.upper()


def _statements(text: str, *, mysql: bool = False) -> list[_Statement]:
    """The statements of text (split at `;`), each read for its operations and collections."""
    toks = [tok for tok in tokens(text, mysql=mysql) if tok.kind not in ("space", "comment")]
    ends = [at for at, tok in enumerate(toks) if tok.kind == "punct" and tok.text == ";"]
    starts = [0, *(end + 1 for end in ends)]
    return [_Reader(toks[start:end]).read()
            for start, end in zip(starts, [*ends, len(toks)], strict=True) if end > start]


def operation_and_collection(text: str, *, mysql: bool = False) -> tuple[str | None, str | None]:
    """(db.operation.name, db.collection.name) of a single statement, or None for either that
    the text does not settle.

    The operation is the main statement's verb, upper-cased: SELECT, INSERT, CREATE, BEGIN..;
    WITH's main statement's (WITH when it has none). The collection is the table of a statement
    that performs one operation on one table (SELECT .. FROM t, INSERT INTO t, UPDATE t, DELETE
    FROM t, CREATE/DROP/ALTER TABLE [IF [NOT] EXISTS] t, TRUNCATE [TABLE] t), qualified as
    written, its quotes removed. None for the rest: joins, comma lists, subqueries anywhere,
    INSERT .. SELECT, functions in FROM, statements this does not know, several statements
    (neither, then). The conventions ask for no guess: a collection only "if a database call
    is performed on a single collection", an operation only "if there is a single operation
    name that describes the database call". For SQL they go further: neither "SHOULD be
    extracted from db.query.text" (the SQL conventions); db.query.summary carries both there.
    """
    found = _statements(text, mysql=mysql)
    if len(found) != 1:
        return None, None
    statement = found[0]
    ops = statement.operations
    if len(ops) != 1 or len(ops[0].targets) != 1 or ops[0].unnamed:
        return statement.verb, None
    return statement.verb, _unquoted(ops[0].targets[0])


def _unquoted(name: _Name) -> str:
    """("public", '"Users"') -> public.Users: quotes are syntax, not part of the name."""
    return ".".join(_unquoted_part(part) for part in name)


def _unquoted_part(part: str) -> str:
    quote = part[:1]
    if quote not in ('"', "`"):
        return part
    inner = part[1:-1] if len(part) > 1 and part.endswith(quote) else part[1:]
    return inner.replace(quote * 2, quote)


def query_summary(text: str, *, mysql: bool = False) -> str | None:
    """db.query.summary: every operation and the collections it names, in text order, e.g.
    "SELECT gotrace_items", "INSERT shipping_details SELECT orders", "SELECT SELECT orders
    customers" (an anonymous table); None when the text holds no operation.

    Operations are upper-cased like db.operation.name, which the summary is to match;
    collections stay as written, quotes included (the conventions' `SELECT "song list"`). No
    literal can get in: the summary holds only keywords and names. Cut to SUMMARY_LIMIT
    characters between words, as the conventions ask of a parsed summary.
    """
    words: list[str] = []
    for statement in _statements(text, mysql=mysql):
        for op in statement.operations:
            words += [op.name, *(".".join(name) for name in op.targets)]
    return _truncated(words) or None


def _truncated(words: list[str]) -> str:
    summary = ""
    for word in words:
        longer = f"{summary} {word}" if summary else word
        if len(longer) > SUMMARY_LIMIT:
            break
        summary = longer
    return summary


def span_name(summary: str | None, operation: str | None, collection: str | None,
              namespace: str | None, system: str) -> str:
    """The span name, per the conventions: {db.query.summary}, else {db.operation.name}
    {target}, else {target}, else {db.system.name}; the target is the collection, else the
    namespace (Redis's is not: its numeric database index "ends up looking confusing")."""
    if summary:
        return summary
    target = collection or (namespace if system != "redis" else None)
    if operation:
        return f"{operation} {target}" if target else operation
    return target or system


# -- Redis -----------------------------------------------------------------------------------


def redis_operation_name(command: str) -> str:
    """db.operation.name of a Redis command: upper-cased, space runs made one ("client
    setname" -> "CLIENT SETNAME")."""
    return " ".join(command.upper().split())


def redis_query_text(command: str, arg_count: int) -> str:
    """db.query.text of a Redis command in redis-cli syntax, every argument a `?` (keys
    included: a key can hold a user's data as well as a value can): ("set", 2) -> "SET ? ?"."""
    return " ".join([redis_operation_name(command), *["?"] * max(arg_count, 0)])


def redis_batch_operation_name(commands: Sequence[str], *, transaction: bool) -> str:
    """db.operation.name of a pipeline (MULTI/EXEC when transaction): "PIPELINE SET" when all
    its commands are SET, else "PIPELINE"; a batch of one command is that command."""
    names = {redis_operation_name(command) for command in commands}
    if len(commands) == 1:
        return names.pop()
    prefix = "MULTI" if transaction else "PIPELINE"
    return f"{prefix} {names.pop()}" if len(names) == 1 else prefix


def redis_batch_query_text(commands: Sequence[tuple[str, int]]) -> str:
    """db.query.text of a pipeline of (command, argument count): the commands' common text,
    else their texts joined with "; "."""
    texts = [redis_query_text(command, count) for command, count in commands]
    return texts[0] if len(set(texts)) == 1 else "; ".join(texts)
