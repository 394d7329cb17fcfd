import sys

from gotrace.cli import main

sys.exit(main())
