import sys

from imgcls.cli import main

sys.exit(main())
