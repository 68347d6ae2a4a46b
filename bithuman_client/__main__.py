from bithuman_client.cli import main

raise SystemExit(main())
