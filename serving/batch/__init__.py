"""The weekly batch scoring job (`job`) and the run summary it prints and logs (`summary`)."""
