package memtrim

// StartWith starts a Trimmer on fake runtime figures and a fake trim.
func StartWith(cfg Config, read func() Stats, trim func()) *Trimmer { return start(cfg, read, trim) }
