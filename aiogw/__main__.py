from aiogw.cli import main

raise SystemExit(main())
