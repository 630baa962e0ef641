"""Tests of replica.s3.S3Storage against a real SeaweedFS S3 server (issue 12)."""
