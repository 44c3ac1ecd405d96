"""Infrastructure as code: the pier spec, CloudFormation import, CloudFormation/Terraform export."""
