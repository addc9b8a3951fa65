from coordbot.cli import run

run()
