"""Watching a running network: figures, monitors and checks of what is bound."""
