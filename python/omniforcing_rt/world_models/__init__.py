"""Models trained on the synthetic world (issue #10, phase 2): media autoencoders and vocoder."""
