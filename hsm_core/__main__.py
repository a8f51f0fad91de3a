from hsm_core.cli.main import main

main()
