"""Result writers: where a finished request's result goes."""
