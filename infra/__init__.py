"""The predictd CDK app: one bucket, a run ledger, EMR Serverless (or EMR on EC2) and the Lambda handlers."""
