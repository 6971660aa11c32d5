//! Config files: conf/*.conf, conf/invalid/*.conf and Debian's examples (config work).
