"""CloudWatch metric alarms: the rule and its evaluation, the runner on a clock, the actions.

alarms (the rule, one evaluation and CloudWatch's reason; pure) → runner (evaluates every
alarm on a clock, records state changes) → actions (notifications, webhooks, history entries).
"""
