"""Exit codes, defined once: the CLI's (LSB-style for status) and the bot's, which the supervisor acts on."""

# daemon_manager.py
EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_NOT_RUNNING, EXIT_UNKNOWN = 0, 1, 2, 3, 4

# run.py (and any supervised program that wants the same treatment): never retried by the supervisor
BOT_EXIT_CONFIG = 2  # invalid arguments or config: it will not fix itself
BOT_EXIT_AUTH = 3    # the exchange refused the keys: retrying would only hammer the venue
NOT_RETRIED = {BOT_EXIT_CONFIG: "invalid config", BOT_EXIT_AUTH: "authentication"}
BOT_EXIT_TERM = 143  # 128 + SIGTERM: ended gracefully on a SIGTERM; unexpected unless the supervisor sent it
