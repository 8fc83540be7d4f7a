-- One database per service (no service reads another's database).
CREATE DATABASE consent;
CREATE DATABASE melding;
CREATE DATABASE routing;
CREATE DATABASE fhir;
