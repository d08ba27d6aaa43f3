"""The journal shipper behind `devmesh ship journald`: sources (`source`), noise filters (`filters`), the
cursor file and spool (`state`), the HTTP side (`client`), the loop (`ship`) and its systemd unit (`unit`)."""
