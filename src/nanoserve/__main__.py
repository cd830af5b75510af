from nanoserve.cli.main import main

main()
