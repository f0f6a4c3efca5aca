from bridge.main import cli

cli()
