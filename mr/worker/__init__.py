"""The worker: consumes the invocation topics of its workflows and capabilities."""
