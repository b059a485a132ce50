"""Default values of every flag, in one place. Names and values follow the original aocr."""

import string

BATCH_SIZE = 65  # test and predict, as the original aocr
# Training: the first hundreds of steps, until the attention aligns, cost steps rather than images,
# so a smaller batch learns more per minute (benchmarks/model_benchmark.py compares batch sizes).
TRAIN_BATCH_SIZE = 16
STEPS_PER_CHECKPOINT = 100
NUM_EPOCH = 1000
TARGET_EMBEDDING_SIZE = 10
ATTN_NUM_HIDDEN = 128
ATTN_NUM_LAYERS = 2
MAX_GRADIENT_NORM = 5.0
MAX_WIDTH = 160
MAX_HEIGHT = 60
MAX_PREDICTION = 8
MODEL_DIR = "./checkpoints"
OUTPUT_DIR = "./results"
LOG_PATH = "aocr.log"
EXPORT_FORMAT = "savedmodel"
EXPORT_DIR = "./exported"
DATASET_OUTPUT = "./dataset.tfrecords"
LOG_STEP = 500

# Adam learns the rendered-text task in minutes where AdaDelta at 1.0 (the original's
# choice) does not move in the same time; `--optimizer adadelta` restores the original.
OPTIMIZER = "adam"
LEARNING_RATES = {"adam": 0.002, "adadelta": 1.0, "sgd": 0.1}

# The CNN's arithmetic in training (aocr.core.precision).
PRECISIONS = ("auto", "float32", "bfloat16")
PRECISION = "auto"
INFERENCE_PRECISIONS = ("auto", "float32", "bfloat16")  # test and predict; an export takes no "auto"

# Images are resized to this height (--image-height) before the CNN; its pools halve it five times
# and the rows left, one at 32, are max-pooled into one.
IMAGE_HEIGHT = 32
MIN_IMAGE_HEIGHT = 16
MAX_IMAGE_HEIGHT = 128
# The CNN's pools take the width down by this factor: encoder column j covers input pixels
# WIDTH_STRIDE*j .. WIDTH_STRIDE*(j+1)-1, and input widths are multiples of it.
WIDTH_STRIDE = 4

# The CNN (aocr.model.cnn.NETWORKS): "compact" is sized for CPUs; "original" is the original aocr's.
CNNS = ("compact", "original")
CNN = "compact"

# What a model trains (--decoder of aocr train): the attention decoder with a CTC head beside it, or the CTC head
# alone. A new model trains the CTC head alone unless told otherwise: on words, captchas and lines alike it
# reaches a given accuracy in a fraction of the attention decoder's training time, which must first learn
# where to look (benchmarks/RESULTS.md has the figures).
MODEL_DECODERS = ("attention", "ctc")
NEW_MODEL_DECODER = "ctc"
# ModelParams fields that shape the attention decoder alone: given to a new model, they choose it.
ATTENTION_DECODER_FIELDS = ("attn_num_layers", "use_gru", "target_embedding_size")
# How test, predict and export read (--decoder): "joint" rescores the attention beam with the CTC head.
DECODERS = ("attention", "ctc", "joint")

DEFAULT_CHARSET = string.digits + string.ascii_uppercase
FULL_ASCII_CHARSET = "".join(chr(code) for code in range(32, 127))

SERVE_HOST = "127.0.0.1"
SERVE_PORT = 8501
SERVE_MODEL_NAME = "aocr"
SERVE_MAX_BATCH_SIZE = 32  # images in one batch of aocr serve; a larger request is split
SERVE_BATCH_THREADS = 1
MAX_REQUEST_BYTES = 10 * 1024 * 1024
# What one request to aocr serve may ask for: images, and pixels declared by their headers, for each image and
# for all of them together; a batch gathered from several requests keeps to the same pixel budget. Decoding and
# resizing hold several copies of an image (bytes, then floats), so the budget bounds what a request can make
# the server hold. Ten megapixels (3872x2582) is far more than a line of text needs; a larger photo is refused
# with a message, and a client should scale it down or crop the text first.
MAX_REQUEST_IMAGES = 1024
MAX_REQUEST_PIXELS = 10_000_000
# What the model is fed at once, in pixels at its own height (each image padded to the widest beside it): the
# model holds many times the bytes per pixel that decoding does, so a request or batch of many wide images runs
# in parts of similar widths, one after another, within this budget; and a decoded image sent to the pixels
# signature may be at most half of it.
MAX_RUN_MODEL_PIXELS = 500_000

# Training-time augmentation of the decoded images (aocr.data.augment); test, predict and export never augment.
AUGMENT_LEVELS = ("auto", "none", "light", "strong")
AUGMENT = "auto"
# --augment auto: the first passes over the training set see the images as they are, which learns fastest while
# the model is far from fitting them; the passes after these add AUTO_AUGMENT_LEVEL's distortions against
# overfitting. So a large set read a few times is never distorted, a small one read many times mostly is.
AUTO_UNDISTORTED_EPOCHS = 10
AUTO_AUGMENT_LEVEL = "light"
# Share of the training records held out for validation when no --validation file is given (0: none).
VALIDATION_SPLIT = 0.05
# Held-out (or --validation) records scored at each checkpoint: enough for a word accuracy within about a
# point (one standard error at 90%), few enough that scoring takes a small share of the training time.
VALIDATION_LIMIT = 1000
# Checkpoints without a better validation score before training stops (None: never stop early).
PATIENCE = None
# Which checkpoint test, predict and export load: "best" (the best validated, else the latest), "latest" or a path.
CHECKPOINT = "best"
# The most pixels an image may declare (--max-image-pixels), checked from its header before anything decodes it.
# 50 megapixels holds a 48 MP phone photo (8000x6000) and a 600 dpi scan of an A4 page (35 MP); decoding
# costs some 16 bytes a pixel, so a small PNG declaring 30000x30000 would otherwise cost over 14 GB.
MAX_IMAGE_PIXELS = 50_000_000
# Seconds a training step of a cluster may wait for the other tasks (--step-timeout) before the trainer saves (the
# chief) and stops, naming the tasks that no longer answer. It must outlast the chief's checkpoint, during which the
# other trainers' steps wait (a save and a validation of up to VALIDATION_LIMIT images), with room to spare,
# yet not keep a cluster that bills by the minute idle for long.
STEP_TIMEOUT = 120.0
