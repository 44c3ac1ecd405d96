"""CloudFormation templates on pier: `pier apply/plan/delete -f template.yaml`.

template (sections, parameters) → intrinsics (functions, conditions) and dependencies (order)
→ resources (SageMaker requests, skipped types) and mapping (ECR / s3:// to local) → stack
(everything resolved and named) → state (what runs, from tags) → engine (the plan) → execute
(apply with rollback and cleanup, delete).
"""
