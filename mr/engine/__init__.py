"""The request engine: accepting requests, running their invocation trees, finishing them."""
