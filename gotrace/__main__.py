import sys

from gotrace.cli.main import main

sys.exit(main())
