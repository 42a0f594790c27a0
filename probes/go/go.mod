module finalstate/probes/go

go 1.24

require github.com/apache/airflow/go-sdk v1.0.0
