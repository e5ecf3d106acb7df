"""The one command line of mr: ``mr <noun> <verb>``; JobX's script names are thin entry points."""
