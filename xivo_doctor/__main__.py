"""`python -m xivo_doctor` = the `xivo-doctor` command."""

from xivo_doctor.cli.main import main

raise SystemExit(main())
