"""Task apps that ship with the package: the reference math app (`synth-ai serve math`)."""
