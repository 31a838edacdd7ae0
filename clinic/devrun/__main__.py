import sys

from clinic.devrun.launcher import main

sys.exit(main())
