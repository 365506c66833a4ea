"""The reasons, in one room: how the risk is made of its standards (`shares`), which standards and
behaviour a reviewer is told about (`choose`), and the words (`words`). Every scorer (the HTTP
service, the batch job, the notebooks) and the backtest's reason accuracy go through here, so a
seller gets one answer wherever it is read."""
