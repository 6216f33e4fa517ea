"""The lab's stand-ins for a XiVO's daemons: xivo-confd, xivo-ctid, xivo-auth, xivo-dird and nginx +
the web interface.

Place in the lab: each module is a process of its own, started per node by `lab.state.start_standin`
as `python -m xivo_doctor.lab.standins.<service> --root <node root>` (`confd`, `ctid`, `auth`, `dird`,
`webservices`); `base` is what every stand-in shares (the Consul stand-in, `lab.consul`, too) and
`digest` the HTTP Digest server side of the confd stand-in. `ctid_registration` is the ctid stand-in's
Consul registration; `nginx`, `login_page`, `jsonphp` and `webservice_access` are the parts of the
`webservices` stand-in; `dird_config` (what xivo-confgend generates for dird) and `dird_backends`
(its `xivo` and `phonebook` sources) are the parts of the `dird` stand-in. Nothing here imports the
rest of the lab but `lab.releases` and `lab.releases_lookup` (the table of what each XiVO release
does, no I/O): a stand-in behaves as its node's release.
"""
