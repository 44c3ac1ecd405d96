"""The platform process (`pier up`): one port serving the control API and the runtime API."""
