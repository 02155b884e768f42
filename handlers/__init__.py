"""AWS Lambda handlers of the predictd deployment (see README.md and the cloud contract).

``on_config.handler`` starts a run for a config dropped under ``configs/``, ``on_job_state.handler``
moves runs along as their jobs change state, ``on_data.handler`` reprocesses the configs that use new
data. They import only pydantic, PyYAML, boto3 and ``predictd_core.config``: the Lambda bundle stays
small, and nothing here needs numpy, zarr or Spark.
"""
