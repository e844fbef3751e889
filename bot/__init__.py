"""The bot process, split along its seams; run.py is its entry point.

args.py (command line), wiring.py (config -> parameters, database, page), runtime.py (what the
page reads), output.py (lines and files the supervisor reads), loop.py (Bot: start, the loop,
stop), modes.py (--check, --backtest) and main.py (the order of it all, the exit codes).
"""
