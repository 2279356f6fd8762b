"""LTX-2 media components around the transformer: video / audio VAE decoders, vocoder, text path.

Modules (one concept each):

- :mod:`~omniforcing_rt.media.video_vae`: video VAE decoder and its config;
- :mod:`~omniforcing_rt.media.video_tiling`: the official temporal / spatial tiled decode;
- :mod:`~omniforcing_rt.media.video_streaming`: per-block video decode with context / look-ahead;
- :mod:`~omniforcing_rt.media.audio_vae`: causal audio VAE decoder (whole clip and exact chunks);
- :mod:`~omniforcing_rt.media.vocoder`: stereo HiFi-GAN vocoder and its receptive field;
- :mod:`~omniforcing_rt.media.audio_streaming`: exact chunked vocoding, latent -> waveform stream;
- :mod:`~omniforcing_rt.media.feature_extractor`: Gemma hidden states -> text features;
- :mod:`~omniforcing_rt.media.text_connector`: the two Embeddings1DConnectors -> AV contexts;
- :mod:`~omniforcing_rt.media.weights`: strict loading from the LTX-2 key layout.
"""
