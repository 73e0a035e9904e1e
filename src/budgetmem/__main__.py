from budgetmem.cli.main import main

raise SystemExit(main())
