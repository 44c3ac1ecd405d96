"""The model server: one MLflow model behind the SageMaker container contract.

It runs inside the model's environment, so it imports only pier.contract, pier.errors and
pier.settings of pier itself.
"""
