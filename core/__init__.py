"""Management plane: registry, configs, logs, supervision. Never imports flask, ccxt or strategies."""
