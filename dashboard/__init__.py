"""The fleet dashboard: one page for every instance of a home, each bot's page proxied at
/bot/<id>/, actions behind the fleet token, fleet /metrics. A separate Flask app that reads what
the bots publish (bot_status.json, the registry); it never imports the trading code."""
