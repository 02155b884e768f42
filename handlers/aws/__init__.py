"""The AWS adapters of the cloud contract's ports: S3, DynamoDB, EMR Serverless or Step Functions, SNS."""
