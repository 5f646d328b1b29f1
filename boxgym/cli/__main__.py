import sys

from boxgym.cli import main

sys.exit(main())
