"""The data plane: InvokeEndpoint routing to instances."""
