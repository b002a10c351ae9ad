import sys

from hardmine.cli import main

sys.exit(main())
