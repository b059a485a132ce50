"""The recognition model: sliding CNN -> BiLSTM encoder -> attention decoder, in tf.compat.v1 graph mode."""
