from services.melding.adapters.orm import metadata
from shared.migrations import run_environment

run_environment(metadata)
