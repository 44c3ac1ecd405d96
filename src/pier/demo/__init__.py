"""The demo: `pier quickstart` (`make demo`) trains, registers, deploys and invokes a model on a
running platform. A client of the platform and of MLflow, like users' own code; nothing in pier
imports it but the quickstart command.
"""
