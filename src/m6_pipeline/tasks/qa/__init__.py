"""Forum-style question answering (§4.4): the pretrained model prompted with "问题？回答："
(Figure 10), no finetuning; a blind human-versus-model judgement where a human answer exists."""
