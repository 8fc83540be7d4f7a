from services.fhir.adapters.orm import metadata
from shared.migrations import run_environment

run_environment(metadata)
