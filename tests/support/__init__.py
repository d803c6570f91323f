"""What the tests share besides fixtures: a served app, a headless browser, the hub stand-ins, made-up documents.
The operator scripts in tools/ use the first three too."""
