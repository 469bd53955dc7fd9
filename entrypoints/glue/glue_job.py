"""The AWS Glue job script (the job's ScriptLocation).

Glue 5.1 installs the project's wheels (``--additional-python-modules``) and provides Spark
with Delta Lake (``--datalake-formats delta``); everything else lives in
``ecommerce_lakehouse_glue.job``.
"""

from ecommerce_lakehouse_glue.job import main

main()
