package platform

// Scheduled changes name IANA time zones (domain.LoadTimeZone). The composition root embeds Go's
// zone database, so every process built on it (the vexil binary, the platform tests) resolves
// "Europe/Paris" without the host's /usr/share/zoneinfo, which slim container images lack. The
// host's database is still preferred when present (time.LoadLocation's order).
import _ "time/tzdata"
