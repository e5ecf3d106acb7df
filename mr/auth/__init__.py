"""Who may use the front end: API tokens and their roles."""
