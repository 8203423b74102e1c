from synth_ai.cli import main

main()
