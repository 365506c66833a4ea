"""Benchmarks: scripts run by hand or by `make bench`, each printing a table. A package only so that
import-linter can hold it above everything: no package of the service imports a benchmark."""
